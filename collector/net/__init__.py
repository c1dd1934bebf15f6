"""Connection code that inputs and outputs share (TLS settings, TCP addresses and
sockets, AMQP connections): plugins import it and the engine, never each other."""
