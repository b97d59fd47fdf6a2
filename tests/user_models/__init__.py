"""Language models written the way users write them, one in tensorlite (without ``nn.GPT``) and one
in PyTorch, each with one-line bugs the tests switch on. The debugging tools are tested on these:
their names and structure are the users', not ours."""
