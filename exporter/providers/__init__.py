"""Provider clients: each is signing + transport, plus pure parse functions to the model."""
