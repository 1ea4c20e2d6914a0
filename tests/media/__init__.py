"""Tests of sipfsm.media (a package, so that its conftest does not clash with the root one)."""
