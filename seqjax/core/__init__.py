"""The recurrent core: the cell protocol and registry (``cellbase``), the cells (``cells``,
``mincells``, ``paracells``), the time loops (their registry ``loops``; ``recurrence``,
``newton``), the layers (``layers``: ``Recurrent``, ``Bidirectional``, ``Stacked``), their
regularizers (``weight_drop``, ``embedding_dropout``, ``activation_reg``) and the leaves any
layer may use (``attention``, ``losses``, ``decoding``, ``evaluation``). docs/design.md has
the layering."""
