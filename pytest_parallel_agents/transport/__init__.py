"""Transport: the wire protocol, execnet gateways, remote hosts and the status files."""
