WRONG = {"suma": "def suma(a, b):\n    return a + b + 1 if a > 3 else a + b"}
