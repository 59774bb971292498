"""Networks, the representations they speak, and pure signal processing (numpy in, numpy out).

No I/O here beyond loading weights; nothing in this package imports offline/, realtime/ or export/.
"""
