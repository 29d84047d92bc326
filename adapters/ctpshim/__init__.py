"""ctpshim://host:port[/source]: a `ctpshim serve` front server (md, and td on its simulated trader)."""
