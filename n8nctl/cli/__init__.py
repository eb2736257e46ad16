"""The command line: one click group per noun. Core modules never import click."""
