"""recaudit.text"""
