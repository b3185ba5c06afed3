"""Step Functions: state machines in the Amazon States Language, interpreted, with their tasks and API."""
