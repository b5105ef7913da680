"""recaudit.metrics"""
