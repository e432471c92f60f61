"""The agent process: runs the tests it is sent and reports them."""
