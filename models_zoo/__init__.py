"""models_zoo: the plain ML library behind the labelling service.

Encoders, self-supervised methods, transfer, selection strategies, forecasting and the
offline campaign simulator. Works on numpy arrays alone and never imports Django.
"""
