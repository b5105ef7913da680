"""recaudit.federated"""
