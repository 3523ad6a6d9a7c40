"""Tests of agent steps: providers, prompts, output checks, end-to-end flows."""
