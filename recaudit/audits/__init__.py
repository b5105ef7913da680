"""recaudit.audits"""
