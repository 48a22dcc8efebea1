"""The networks service: action networks formed around challenges."""
