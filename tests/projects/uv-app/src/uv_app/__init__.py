GREETING = "carried by uv"
