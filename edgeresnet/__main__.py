from edgeresnet.cli import main

main()
