"""Auth's emails: what they say (mailer), their queue (store) and their delivery over SMTP
(sender).
"""
