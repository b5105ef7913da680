"""recaudit.unlearning"""
