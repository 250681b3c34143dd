PORT = 7923
HOSTS = localhost
actionset1:
	remote-sort words.txt > sorted.txt
		requires words.txt
actionset2:
	remote-sort -r sorted.txt
		requires sorted.txt
	this-command-does-not-exist-c5
