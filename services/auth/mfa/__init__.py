"""``iot.auth.v1.MfaService`` (protos/iot/auth/v1/mfa.proto): TOTP set-up, recovery codes, login
codes.
"""
