"""The native runtime: n8n from npm under a pip-installed Node.js, and the bridge, under supervisord."""
