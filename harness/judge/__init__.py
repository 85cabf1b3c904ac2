"""Judging what came back: KTAP parsing, kernel-log reports per case, expectations per kernel
version, outcomes, and the report on which expectation rules were exercised."""
