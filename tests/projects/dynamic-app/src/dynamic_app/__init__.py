GREETING = "carried at the tagged version"
