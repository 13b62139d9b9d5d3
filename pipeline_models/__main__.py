"""`python -m pipeline_models`: the pipeline-models command line."""
import sys

from .cli import main

sys.exit(main())
