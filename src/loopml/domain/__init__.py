"""Pure core of loopml: values in, values out, no I/O, no clock, no environment."""
