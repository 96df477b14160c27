"""The edge: listeners that read a ClientHello, then drop the connection or forward it."""
