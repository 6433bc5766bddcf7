"""Auth's core API (``iot.auth.v1.AuthService``, protos/iot/auth/v1/auth.proto): registration,
login, tokens, email verification and password reset.
"""
