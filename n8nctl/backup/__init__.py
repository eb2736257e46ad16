"""Backups of the whole runtime: n8n's database and user folder (the encryption key with it), the
bridge's store, n8nctl's state and every workflow; restore, the restore drill, retention and prune.

One module per noun: manifest (what a backup holds), crypto (age encryption of its files), archive
(folders as tar files), create (`n8nctl backup`), catalog (finding and opening backups, local or S3),
drill (`backups verify`), restore, retention (which backups to keep), prune (`n8nctl prune`).
Everything that differs per runtime is behind the runtime interface (n8nctl/runtimes/).
"""
