"""Events and queues: EventBridge buses and rules, S3 notifications, SQS and Kinesis event sources."""
