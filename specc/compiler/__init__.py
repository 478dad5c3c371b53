"""The compiler: modules, name resolution, types, constants, checks, backend capabilities, plan."""
