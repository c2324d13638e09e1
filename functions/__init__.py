"""Tollgate: serverless billing for wholesale VoIP carriers."""
