GREETING = "initialised by wheelbarrow"
