"""recaudit.adapters"""
