"""Bounds of stored and accepted strings, shared by the models, schemas and validators.

One place for them, so the pure modules (``security/``, ``validation``) need not import the
database models.
"""

PASSWORD_MAX_LENGTH = 128  # characters, after normalisation
EMAIL_MAX_LENGTH = 320
NAME_MAX_LENGTH = 100
ORG_NAME_MAX_LENGTH = 100
SLUG_MAX_LENGTH = 64
DESCRIPTION_MAX_LENGTH = 1000
PASSWORD_HASH_MAX_LENGTH = 255
TOKEN_HASH_LENGTH = 64  # hex SHA-256
DEVICE_NAME_MAX_LENGTH = 200
DEVICE_TYPE_MAX_LENGTH = 20
BROWSER_MAX_LENGTH = 100
OS_MAX_LENGTH = 100
IP_MAX_LENGTH = 45
USER_AGENT_MAX_LENGTH = 512
REASON_MAX_LENGTH = 32
ROLE_MAX_LENGTH = 32  # role keys, built-in and custom
ROLE_NAME_MAX_LENGTH = 100
ROLE_DESCRIPTION_MAX_LENGTH = 500
PERMISSION_MAX_LENGTH = 64
TOKEN_PURPOSE_MAX_LENGTH = 16
STATUS_MAX_LENGTH = 16

MAX_BODY_BYTES = 1024 * 1024  # request bodies: 1 MiB
