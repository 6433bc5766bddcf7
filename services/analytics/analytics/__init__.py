"""``iot.analytics.v1.AnalyticsService`` (protos/iot/analytics/v1/analytics.proto): detection,
anomaly review, correlations.
"""
