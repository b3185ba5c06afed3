"""SAM: templates read and stacks deployed into the local cloud."""
