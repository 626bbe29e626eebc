"""Operations: packaging and rendering the AWS deployment, the monthly cost estimate, and the
zones' retention (``peak deploy``, ``peak cost``, ``peak prune``)."""
