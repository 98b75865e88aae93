"""Where raw events come from: the user's openai client (live, resumed, finished), any
byte iterable, and recordings. Each module loads only when it is used."""
