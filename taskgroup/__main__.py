from taskgroup.cli import main

main()
