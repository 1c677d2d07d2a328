"""The serverless examples (examples/aws_lambda, cloud_run, azure_functions) against the emulators."""
