"""recaudit.tallrec"""
