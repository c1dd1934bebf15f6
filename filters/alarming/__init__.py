"""LMA's alarm chain, natively: the alarm, policy and cluster definitions (a YAML file,
or the Lua tables LMA's Puppet generated) and their evaluation, shared by AfdFilter
and GseFilter. docs/alarms.md is the operator's side of it."""
