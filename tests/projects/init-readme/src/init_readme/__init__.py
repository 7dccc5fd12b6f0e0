GREETING = "built as the README says"
