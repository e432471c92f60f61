"""Coverage: measuring in agents and the controller, combining, reporting."""
