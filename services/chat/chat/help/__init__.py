"""Help articles (Markdown, one file per topic) and the retrieval that answers from them."""
