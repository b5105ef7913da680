"""recaudit.probes"""
