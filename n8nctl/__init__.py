"""n8nctl: run n8n as an integration runtime, with the FlowBiz job bridge."""

__version__ = "0.1.0"
