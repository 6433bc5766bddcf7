"""``iot.auth.v1.SecurityService`` (protos/iot/auth/v1/security.proto): the security log and
sessions.
"""
