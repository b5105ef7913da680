"""recaudit.reports"""
