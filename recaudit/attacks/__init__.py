"""recaudit.attacks"""
