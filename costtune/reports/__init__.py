"""Read-only views of the store for people: the leaderboard, the cost report, the HTML page.

leaderboard.py ranks trials with their cost columns; cost.py works out what the money bought (cost
per improvement, Pareto front, spend, preemption waste); html.py draws it all on one page.
"""
