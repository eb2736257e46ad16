"""The bridge: FlowBiz's job contract over HTTP, a durable outbox to n8n and back."""
