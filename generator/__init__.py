"""The sample-data generator behind ``peak generate``: a development tool, not part of the
runtime (the Lambda, the Glue job and CodeBuild never ship it)."""
